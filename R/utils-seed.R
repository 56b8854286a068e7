# Exact R-RNG parity with ArchR (irlba's random start, Seurat's dummy matrix,
# uwot) requires set.seed(seed) where ArchR calls it. .with_seed() does that
# and puts the caller's RNG state back afterwards, so package code never
# leaves the global stream changed.

.with_seed <- function(seed, expr) {
    env <- globalenv()
    had <- exists(".Random.seed", envir = env, inherits = FALSE)
    old <- if (had) get(".Random.seed", envir = env, inherits = FALSE)
    on.exit({
        if (had) assign(".Random.seed", old, envir = env)
        else if (exists(".Random.seed", envir = env, inherits = FALSE))
            rm(".Random.seed", envir = env)
    })
    if (!is.null(seed)) set.seed(seed)
    expr
}
