#!/usr/bin/env bash
# tests/test_packages.sh: every Debian package scripts/setup.sh installs is used by the build or
# the tests, so the setup installs only what layercake needs. A package counts as used when one
# of the files it installs is used:
#   - a pkg-config module named by a pkg_check_modules() in a CMakeLists.txt;
#   - a file whose path the build recorded (CMakeCache.txt: compilers, find_library,
#     find_program; the link lines);
#   - a program the build, the scripts or the tests invoke by name;
#   - a Python module the tests or benchmarks import.
# A package that only pulls in others counts through them; build-essential is the C toolchain
# that CMake runs.
#   test_packages.sh SOURCE_DIR BUILD_DIR
set -uo pipefail
SRC=$1 BUILD=$2
cd "$SRC" || exit 1
command -v dpkg >/dev/null || { echo "FAIL: dpkg not found (setup.sh targets Debian)"; exit 1; }

# The package names of setup.sh's PACKAGES=( ... ) array, comments dropped.
packages=$(awk '/^PACKAGES=\(/{f=1;next} f&&/^\)/{exit} f{sub(/#.*/,""); print}' scripts/setup.sh)
[ -n "$packages" ] || { echo "FAIL: no PACKAGES array in scripts/setup.sh"; exit 1; }

# What the build recorded, and where programs and modules are used (setup.sh without its list).
recorded=$(cat "$BUILD/CMakeCache.txt"; find "$BUILD" -name link.txt -exec cat {} +)
modules=$(grep -ho 'pkg_check_modules([^)]*' $(git ls-files '*CMakeLists.txt'))
scripts=$(cat $(git ls-files '*CMakeLists.txt' '*.sh' '.ci/*' | grep -v '^scripts/setup.sh$');
          awk '/^PACKAGES=\(/{f=1} !f; f&&/^\)/{f=0}' scripts/setup.sh)
imports=$(grep -hE '^\s*(import|from) [A-Za-z_]+' $(git ls-files '*.py' '*.sh') | awk '{print $2}' |
          sed 's/\..*//' | sort -u)

recorded_paths=$(grep -oE '/[^ ;:"=]+' <<<"$recorded" | sort -u)
script_words=$(grep -oE '[A-Za-z0-9_.+-]+' <<<"$scripts" | sort -u)

# The files (not folders) package $1 installs, and its top-level Python modules.
package_files() {
  dpkg -L "$1" 2>/dev/null | xargs -r -d '\n' stat -c '%F|%n' 2>/dev/null | grep -v '^directory|' |
    cut -d'|' -f2- | sort -u
}
package_modules() {
  dpkg -L "$1" 2>/dev/null | grep -oE 'dist-packages/[A-Za-z_0-9]+$' | sed 's#.*/##' | sort -u
}

used_by() { # prints how package $1 itself is used, or nothing
  local files hit
  files=$(package_files "$1")
  hit=$(grep -oE '/pkgconfig/[^/]+\.pc$' <<<"$files" | sed 's#.*/##; s#\.pc$##' |
        while read -r m; do grep -qw -- "$m" <<<"$modules" && echo "pkg-config $m"; done | head -1)
  [ -z "$hit" ] && hit=$(comm -12 <(echo "$files") <(echo "$recorded_paths") | head -1 | sed 's/^/build uses /')
  [ -z "$hit" ] && hit=$(grep -oE '^/usr/bin/[^/]+$' <<<"$files" | sed 's#.*/##' | sort -u |
                         comm -12 - <(echo "$script_words") | head -1 | sed 's/^/runs /')
  [ -z "$hit" ] && hit=$(package_modules "$1" | comm -12 - <(echo "$imports") | head -1 |
                         sed 's/^/python import /')
  echo "$hit"
}

# A transitional or metapackage (pkg-config, python3-h5py: nothing of its own outside
# /usr/share) is used when what it depends on is: the first alternative of each dependency.
used_via_depends() {
  local dep how
  package_files "$1" | grep -qv '^/usr/share/' && return
  package_modules "$1" | grep -q . && return
  for dep in $(dpkg-query -W -f='${Depends}' "$1" 2>/dev/null | tr ',' '\n' |
               sed 's/([^)]*)//g; s/|/ /g' | awk '{print $1}'); do
    how=$(used_by "$dep")
    [ -n "$how" ] && { echo "through $dep: $how"; return; }
  done
}

fails=0
for p in $packages; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    echo "FAIL: $p is in setup.sh's list but not installed"; fails=$((fails + 1)); continue
  fi
  [ "$p" = build-essential ] && { echo "ok   $p: the C toolchain"; continue; }
  how=$(used_by "$p")
  [ -z "$how" ] && how=$(used_via_depends "$p")
  if [ -n "$how" ]; then echo "ok   $p: $how"; else echo "FAIL: $p is installed by setup.sh but nothing uses it"; fails=$((fails + 1)); fi
done
[ "$fails" -eq 0 ] || { echo "$fails package problem(s)"; exit 1; }
echo "every package in setup.sh is used"
