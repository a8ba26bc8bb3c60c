"""Built-in solvers of fgamcd-opt. Each module lists its classes in ``__solvers__`` and is found
by :mod:`fgamcd_opt.registry` exactly like a third-party plugin would be."""
