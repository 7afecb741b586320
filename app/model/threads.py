"""How many BLAS threads each process may use.

Serving workers default to one thread each: N workers times N BLAS threads
would oversubscribe the cores. A training process may use every core for
NumPy's BLAS, but SciPy's bundled OpenBLAS (used inside L-BFGS-B) is held to
one thread: two OpenBLAS pools that both spin while waiting for work were
measured here to make L-BFGS ten times slower on two cores.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)


def limit_blas(threads: int) -> None:
    """Cap every BLAS library loaded in this process at ``threads``."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads, user_api="blas")


def set_training_threads(threads: int | None = None) -> None:
    """NumPy's BLAS gets ``threads`` (default: all cores); any other BLAS one."""
    import numpy  # noqa: F401 - load NumPy's BLAS so the controller sees it
    import scipy.optimize  # noqa: F401 - and SciPy's
    from threadpoolctl import ThreadpoolController

    threads = threads or os.cpu_count() or 1
    for library in ThreadpoolController().lib_controllers:
        if library.user_api != "blas":
            continue
        is_numpy = "numpy" in os.path.basename(os.path.dirname(library.filepath))
        library.set_num_threads(threads if is_numpy else 1)
