#!/bin/sh
# Delete from an installed runtime (site-packages, or a `pip install --target` folder) what the
# predictor never loads. Run by the Dockerfile after `pip install -r requirements-runtime.txt`,
# and by the tests and the benchmark on a --target folder, so what they measure is what the image gets.
#
# Proof that nothing here is needed: tests/test_image.py runs `predict`, `selfcheck`, `--version`
# (and the bad-input paths) and `serve` in the built image, pruned by this script. The server's packages
# (uvicorn, httptools, starlette, anyio, h11, click, idna, msgspec, orjson, prometheus-client) lose
# only their type stubs; pysimdjson also loses its C++ and Cython sources.
# Kept: numpy.libs (OpenBLAS, gfortran, quadmath: ~28 MB), which numpy's core extension links to.
set -eu
site=${1:?usage: prune_runtime.sh SITE_PACKAGES_DIR}
test -d "$site/numpy" || { echo "error: $site has no numpy to prune" >&2; exit 2; }
cd "$site"
# Test suites, type stubs, C headers and static libraries: for developers, never imported.
find numpy -depth -type d -name tests -exec rm -rf {} +
find . -type f \( -name '*.pyi' -o -name '*.pxd' -o -name py.typed \) -delete
rm -rf numpy/_core/include numpy/_core/lib numpy/_pyinstaller numpy/conftest.py
# numpy's test-only extension modules.
rm -f numpy/_core/_simd.*.so numpy/_core/_multiarray_tests.*.so numpy/_core/_umath_tests.*.so \
      numpy/_core/_rational_tests.*.so numpy/_core/_struct_ufunc_tests.*.so numpy/_core/_operand_flag_tests.*.so
# Build tools and subpackages numpy imports only on demand (numpy.random, numpy.fft...), which the
# predictor never asks for: its arithmetic is elementwise, its reader np.loadtxt (numpy.lib).
rm -rf numpy/f2py numpy/distutils numpy/typing numpy/testing numpy/random numpy/fft numpy/polynomial numpy/doc numpy/ma
rm -f bin/f2py bin/numpy-config
# pysimdjson ships its C++ and Cython sources (7.4 MB) beside the compiled extension it imports.
rm -f simdjson/*.cpp simdjson/*.h simdjson/*.pyx
