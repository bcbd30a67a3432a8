// train/report/arena.h: evaluation statistics. Models answer the same prompts; a judge (a gold
// reward function or a reward model) scores every (model, prompt). From those scores:
//   - the win rate of each model against a reference model on paired prompts (win 1, tie 1/2,
//     loss 0), with a bootstrap confidence interval over prompts;
//   - an arena: every pair of models meets on every prompt, and Bradley-Terry ratings are
//     fitted by maximum likelihood (Newton's method on the log-likelihood, ties as half a win
//     to each side, a prior of one virtual tie per pair so that a model that wins everything
//     keeps a finite rating), reported on the Elo scale with the reference model at 1000 and
//     bootstrap confidence intervals, as a leaderboard.
// The eval stage fills an ArenaResults (arena_results_init, its measured means, arena_judge),
// writes it as results.json (arena_write_results) and prints it (arena_print_table);
// `layercake report` reads it back (arena_read_results). docs/report.md has the schema and the
// method.
//
// Scores are row-major (n_models, n_prompts): scores[m * n_prompts + p]. Functions that can
// fail on their input return 0 or -1 with a message in err.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define ARENA_NAME_MAX 256    // model names are stage names or checkpoint paths
#define ARENA_ELO_BASE 1000.0 // the Elo of the anchor (the reference model, or the mean)

typedef struct {
    double tie_tol; // |score_a - score_b| <= tie_tol is a tie
    int n_boot;     // bootstrap resamples of the prompts; 0: intervals collapse to the estimate
    double level;   // confidence level of the intervals, e.g. 0.95
    double prior;   // virtual ties added to every pair of models (> 0 keeps ratings finite)
    int anchor;     // index of the model held at ARENA_ELO_BASE; -1: the mean rating is
    uint64_t seed;  // seeds the bootstrap's RNG
} ArenaOptions;

// tie_tol 0, 1000 resamples, 95%, prior 1 virtual tie per pair, anchor model 0, seed 0.
ArenaOptions arena_options_default(void);

typedef struct {
    double rate;            // (wins + ties / 2) / prompts
    double lo, hi;          // bootstrap percentile interval of rate at the options' level
    int wins, ties, losses; // prompts on which A's score is above, within tie_tol of, below B's
} ArenaWinRate;

// Win rate of A (scores a[0..n)) against B (b[0..n)) on n paired prompts.
int arena_win_rate(const double *a, const double *b, int n, const ArenaOptions *o,
                   ArenaWinRate *out, char *err, size_t errlen);

// Bradley-Terry maximum likelihood on a match table of n models: wins[i * n + j] is how often i
// beat j, ties counted as half a win to each side (the diagonal is ignored). Adds o->prior
// virtual ties to every pair, fits by Newton's method and writes Elo ratings (400 log10 of the
// strengths, anchored by o->anchor) to elo[0..n). Returns the Newton steps taken, or -1 when
// the likelihood has no maximum (only with prior 0: some group of models never loses to, or
// never beats, the rest).
int arena_bt_elo(const double *wins, int n, const ArenaOptions *o, double *elo);

typedef struct {
    double elo;             // Bradley-Terry rating on the Elo scale, fitted on all prompts
    double lo, hi;          // bootstrap percentile interval of elo
    int wins, ties, losses; // over this model's matches against every other model
    int rank;               // 1 + the models whose interval lies entirely above this one's
} ArenaRating;

// The arena on a score table (n_models, n_prompts): one match per pair and prompt. Ratings,
// intervals (resampling prompts) and ranks go to out[0..n_models).
int arena_fit(const double *scores, int n_models, int n_prompts, const ArenaOptions *o,
              ArenaRating *out, char *err, size_t errlen);

// ---- results: what the eval stage measures, results.json, tables ---------------------------

// One evaluated model. NAN marks a quantity that was not measured (written as JSON null and
// shown as "-").
typedef struct {
    char name[ARENA_NAME_MAX]; // stage name (pretrain, sft, ppo, dpo, ...) or checkpoint path
    double gold_reward;        // mean gold reward of its sampled responses
    double accuracy;           // share of sampled responses the gold function marks correct
    double rm_score;           // mean reward-model score of its sampled responses
    double gold_reward_greedy; // the same three over its greedy responses
    double accuracy_greedy;
    double rm_score_greedy;
    double kl_to_sft;               // mean KL(model || sft) per response, in nats (best-of-n: the
                                    // sample-based estimate, train/objectives/bon.h)
    double kl_analytic;             // best-of-n: log n - (n-1)/n, its KL from bon_model; else NAN
    int bon_n;                      // best-of-n entries: n; 0 for a model
    char bon_model[ARENA_NAME_MAX]; // best-of-n entries: the model sampled; "" for a model
    double response_length;         // mean response length in tokens
    ArenaWinRate win;               // against the reference, by the judge's scores
    double win_rate_rm;             // against the reference, by the reward model's scores
    ArenaRating rating;             // in the arena of all models, by the judge's scores
} ArenaModel;

typedef struct {
    int n_models;
    ArenaModel *models;             // (n_models), in the order the eval stage lists them
    char reference[ARENA_NAME_MAX]; // win rates are against it; it anchors the Elo scale
    char judge[ARENA_NAME_MAX];     // what scored the arena: "gold" or "reward"
    int prompts;                    // prompts each model answered
    ArenaOptions opts;              // how win rates and ratings were computed
} ArenaResults;

// Allocates n models named names[0..n) that answered `prompts` prompts, every measurement NAN,
// the reference names[0], judge "gold" and default options (names longer than
// ARENA_NAME_MAX - 1 bytes are cut).
void arena_results_init(ArenaResults *r, int n, const char *const *names, int prompts);
void arena_results_free(ArenaResults *r);

// Fills every model's win, win_rate_rm and rating from the judge's scores and, when rm is not
// NULL, the reward model's (both (n_models, prompts)). Anchors the Elo scale at the reference.
int arena_judge(ArenaResults *r, const double *judge, const double *rm, char *err, size_t errlen);

// results.json (docs/report.md): written atomically (temporary file, rename); read back with
// every field checked, err naming the file and the field.
int arena_write_results(const char *path, const ArenaResults *r, char *err, size_t errlen);
int arena_read_results(const char *path, ArenaResults *r, char *err, size_t errlen);

// The comparison table (one row per model: gold reward, accuracy and RM score, each sampled
// then greedy, KL to SFT, length, win rate vs the reference with its interval, Elo with its
// interval; columns no model has are left out) and the leaderboard (by Elo: rank, model, Elo,
// interval, wins/ties/losses). Both are Markdown tables with aligned columns, so the terminal
// and report.md show the same text.
void arena_print_table(FILE *f, const ArenaResults *r);
void arena_print_leaderboard(FILE *f, const ArenaResults *r);

// The leaderboard's order: model indices by Elo, best first, equals (and models without a
// rating, last) in their listed order. order has n_models entries.
void arena_order_by_elo(const ArenaResults *r, int *order);
