#!/bin/sh
# The build steps of the container image (Containerfile), kept in one script so that
# tests/packaging/test_container_recipe.py runs exactly these steps without a container engine.
#
#   install.sh SOURCE_DIR PREFIX
#
# Builds Warden's wheel from SOURCE_DIR and installs it with the server extra into a fresh
# virtual environment at PREFIX, which gets no pip of its own (the builder's pip, 22.3 or newer,
# installs into it); nothing else of the source tree ends up in PREFIX. Bytecode is compiled
# here because the image runs with a read-only root filesystem. PYTHON picks the builder's
# Python (default python3).
set -eu
if [ "$#" -ne 2 ]; then
    echo "usage: $0 SOURCE_DIR PREFIX" >&2
    exit 2
fi
src=$1
prefix=$2
python=${PYTHON:-python3}
wheels=$(mktemp -d)
trap 'rm -rf "$wheels"' EXIT

"$python" -m venv --without-pip "$prefix"
"$python" -m pip wheel --quiet --disable-pip-version-check --no-deps --wheel-dir "$wheels" "$src"
wheel=$(ls "$wheels"/*.whl)
"$python" -m pip --python "$prefix/bin/python" install --quiet --disable-pip-version-check "${wheel}[server]"
"$prefix/bin/python" -m compileall -q "$prefix/lib"
"$prefix/bin/warden" --version
