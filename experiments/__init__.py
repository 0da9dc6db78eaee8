"""Experiments on softmax, linear and ReLU attention: variants, models, training, sweeps."""


def load_run(run, results_dir=None):
    """``(config, model)`` of a finished run, its kept weights loaded, in eval mode: see
    :func:`experiments.loading.load_run` (imported when first called, so that ``import experiments`` stays
    light)."""
    from experiments.loading import load_run as load

    return load(run, results_dir)
