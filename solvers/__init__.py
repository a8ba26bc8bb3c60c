"""Built-in solvers of fgamcd-opt, one algorithm per module. Each is registered under the
``fgamcd_opt.solvers`` entry-point group (pyproject.toml) exactly like a third-party plugin, and in
:data:`fgamcd_opt.registry.BUILTIN_SOLVERS`; ``__solvers__`` lists a module's classes."""
