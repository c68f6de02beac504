"""The DVC stages: one module per dvc.yaml stage (`python -m stages.<module>`; quantize.py runs two),
params.py for params.yaml and dataset.py for the split files. Importing the package pins the BLAS
kernels (below).
"""

import os


def _pin_blas_kernels() -> None:
    """Make every x86-64 machine compute the same bits.

    OpenBLAS picks its kernels by CPU (AVX-512 "SkylakeX" on one machine, AVX2 "Haswell"/"Zen" on
    most CI runners), and they round differently in the last bits: the least-squares fit, hence
    the model files' md5 in dvc.lock, would change with the machine. The Haswell kernels run on
    every x86-64 CPU with AVX2 and FMA, so we pin them, before numpy loads OpenBLAS. A choice
    already in the environment wins (some machines set it to avoid a broken kernel).
    """
    if "OPENBLAS_CORETYPE" in os.environ:
        return
    try:  # Linux; the "flags" line (x86 only) lists avx2 and fma on CPUs the kernels run on
        with open("/proc/cpuinfo") as cpuinfo:
            flags = set(next((line for line in cpuinfo if line.startswith("flags")), "").split())
    except OSError:
        return
    if {"avx2", "fma"} <= flags:
        os.environ["OPENBLAS_CORETYPE"] = "Haswell"


_pin_blas_kernels()
