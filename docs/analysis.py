# %% [markdown]
# # A sweep's results as a table
#
# Every run in the results folder is one row of a pandas DataFrame
# (`experiments.results.load`): its config as dotted columns, its status and
# final metrics, the chance level, ceiling and learned gate, the probes, the
# device and the time, the same columns as the sweep's CSV. `make all`
# executes this page on the profile it ran (`$PROFILE`, results in
# `$RESULTS_DIR`); here the `mqar_pairs` sweep (recall against the number of
# key-value pairs, claims D1 and K2) is loaded, grouped and plotted.

# %%
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from experiments import results  # noqa: E402

profile = os.environ.get("PROFILE", "quick")
runs = results.load(os.environ.get("RESULTS_DIR", "results"), sweep="mqar_pairs", profile=profile)
runs[["model.attention.name", "task.num_kv_pairs", "task.seq_len", "train.seed", "test_accuracy", "learned"]]

# %% [markdown]
# Mean, lowest and highest test accuracy over seeds, per variant, number of
# pairs and length:

# %%
keys = ["model.attention.name", "task.num_kv_pairs", "task.seq_len"]
table = runs.groupby(keys)["test_accuracy"].agg(["mean", "min", "max", "count"])
table

# %% [markdown]
# The same as a figure against whichever of the pairs and the length the
# profile sweeps, with each task's chance level (a guess among the example's
# values, 1/N) and the seed spread as bars:

# %%
x = max(["task.num_kv_pairs", "task.seq_len"], key=lambda column: runs[column].nunique())
other = "task.seq_len" if x == "task.num_kv_pairs" else "task.num_kv_pairs"
fig, ax = plt.subplots(figsize=(5, 3.2))
for (name, fixed), group in table.reset_index().groupby(["model.attention.name", other]):
    ax.errorbar(group[x], group["mean"], yerr=[group["mean"] - group["min"], group["max"] - group["mean"]],
                marker="o", capsize=3, label=f"{name}, {other.split('.')[1]} {fixed}")
chance = runs.groupby(x)["chance"].mean()
ax.plot(chance.index, chance.values, color="gray", ls="--", label="chance")
ax.set(xlabel=x, ylabel="test accuracy", ylim=(0, 1.05), title=f"mqar_pairs ({profile} profile)")
ax.legend(fontsize=6)
plt.show()

# %% [markdown]
# `curves=True` gives every evaluation in long form (run, step, metric,
# value): here the steps each variant took to its final accuracy at the most
# pairs.

# %%
curves = results.load(os.environ.get("RESULTS_DIR", "results"), sweep="mqar_pairs", profile=profile, curves=True)
accuracy = curves[curves.metric == "test_accuracy"].merge(runs[["run_id", *keys]], on="run_id")
most = accuracy[accuracy["task.num_kv_pairs"] == accuracy["task.num_kv_pairs"].max()]
most.pivot_table(index="step", columns="model.attention.name", values="value", aggfunc="mean")
