// train/cli/cmd_version.c: `layercake version`: the version, the backends built into this binary
// with their libraries' versions, and whether each can run here (and why not).
#include "kernels/kernels.h"
#include "train/cli/commands.h"
#include <stdio.h>

static const char *const BACKENDS[] = {"cpu", "cuda"};

// s as a JSON string's contents (quotes, backslashes and control characters escaped).
static void json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

int cmd_version(int argc, char **argv) {
    bool json = false;
    const Option opts[] = {{"json", 0, OPT_FLAG, &json, 0, 0, false, NULL, "print one JSON object"},
                           {0}};
    const OptionsCommand cmd = {.name = "version",
                                .synopsis = "[--json]",
                                .summary = "print the version and the backends built in",
                                .description = "Prints the version, the backends built into "
                                               "this binary with their libraries' versions, and "
                                               "whether each can run on this machine.\n",
                                .options = opts};
    OptionArgs args;
    int rc = options_parse(&cmd, argc, argv, &args);
    if (rc != OPTIONS_CONTINUE) return rc;
    int n = (int)(sizeof(BACKENDS) / sizeof(BACKENDS[0]));
    if (json)
        printf("{\"version\": \"%s\", \"backends\": [", LC_VERSION);
    else
        printf("layercake %s\n", LC_VERSION);
    for (int i = 0; i < n; i++) {
        BackendInfo info;
        backend_info(BACKENDS[i], &info);
        if (json) {
            printf(
                "%s{\"name\": \"%s\", \"built\": %s, \"usable\": %s, \"versions\": ", i ? ", " : "",
                BACKENDS[i], info.built ? "true" : "false", info.usable ? "true" : "false");
            json_string(stdout, info.versions);
            printf(", \"why\": ");
            json_string(stdout, info.why);
            printf("}");
        } else if (!info.built) {
            printf("backend %s: not built in\n", BACKENDS[i]);
        } else {
            printf("backend %s: built in%s%s%s; %s%s\n", BACKENDS[i], info.versions[0] ? " (" : "",
                   info.versions, info.versions[0] ? ")" : "",
                   info.usable ? "usable" : "not usable: ", info.why);
        }
    }
    if (json) printf("]}\n");
    return 0;
}
