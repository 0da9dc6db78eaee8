"""Run one synthetic experiment from the command line.

    python -m experiments.run --task mqar --attention rela      # the recall recipe: learns on a CPU in a minute
    python -m experiments.run task.name=mqar model.attention.name=rela task.seq_len=128 \\
        task.num_kv_pairs=16 model.d_model=64 train.seed=0

A run starts from the recipe measured on its task (``--recipe``; for MQAR
the recall recipe of :mod:`experiments.sweeps._common`, under which every
variant learns on two CPU cores; ``--recipe none`` keeps every field at its
own default, and a task without a recipe does so anyway). Every field is set
by its dotted path, as in sweep files and result JSON, and checked by the
same code (values are read as JSON where they parse, else as text:
``train.lr=3e-3``, ``model.token_mixing=shift``, ``model.mlp=false``). Each
field of the chosen task, attention variant, model and training config is
also a flag (``--seq-len 128``; ``--help`` lists them under their dotted
prefix with their defaults for the chosen ``--task``, ``--attention`` and
``--recipe``). A flag wins over the recipe and a dotted value wins over a
flag. The result is one JSON file in the result cache, keyed by the full
resolved config; a config that has been run before is a cache hit and
returns at once. The summary's last line is the test accuracy against the
task's chance level. Bad input (an unknown name, a task that cannot be
built) exits with status 2 and writes nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import types
import typing
from typing import Any

import synthetic
from experiments import attention, cli, tracking
from experiments.config import ConfigError, field_types
from experiments.atomic import NoSpace
from experiments.model import ModelConfig
from experiments.cache import (LockTimeout, check_results_dir, check_task_folder, failure_path, record_failure,
                               result_path, results_dir)
from experiments.runs import RunConfig, check_compatible, check_fits, describe, run
from experiments.sweep_files import set_dotted
from experiments.sweeps._common import NO_RECIPE, RECIPES, default_recipe, recipe_names, recipe_sections
from experiments.train import TrainConfig, resolve_device


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _scalar_type(hint: Any) -> type:
    """``int`` for ``int``, ``float`` for ``float | None``, and so on."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
    return hint


def add_config_flags(parser: argparse.ArgumentParser, cls: type, prefix: str, title: str, *,
                     skip: tuple[str, ...] = (), recipe: tuple[str, dict[str, Any]] = (NO_RECIPE, {})) -> list[str]:
    """One flag per dataclass field, its help and choices taken from the field's metadata.

    The group is titled by the fields' dotted ``prefix`` (``train.``), the spelling of a FIELD=VALUE
    override; ``recipe`` is ``(name, the values it sets)``, shown as the defaults they are.
    """
    fields = [f for f in dataclasses.fields(cls) if f.name not in skip]
    example = f"set each as a flag or as {prefix}FIELD=VALUE: {_flag(fields[0].name)} VALUE is " \
              f"{prefix}{fields[0].name}=VALUE" if fields else None
    group = parser.add_argument_group(f"{prefix}* ({title})" if title else f"{prefix}*", example)
    hints = field_types(cls)
    recipe_name, preset = recipe
    added = []
    for f in fields:
        kind = _scalar_type(hints[f.name])
        default = f.default
        if f.name in preset and preset[f.name] != f.default:
            default = f"{preset[f.name]}, the {recipe_name} recipe's; {f.default} with --recipe {NO_RECIPE}"
        help_text = f"{f.metadata.get('help', '')} (default: {default})"
        if kind is bool:
            group.add_argument(_flag(f.name), dest=f.name, action=argparse.BooleanOptionalAction,
                               default=argparse.SUPPRESS, help=help_text)
        elif typing.get_origin(kind) is tuple:  # tuple[int, ...]: one or more values after the flag
            item = typing.get_args(kind)[0]
            group.add_argument(_flag(f.name), dest=f.name, type=item, nargs="+", default=argparse.SUPPRESS,
                               metavar=item.__name__.upper(), help=help_text)
        else:
            group.add_argument(_flag(f.name), dest=f.name, type=kind, default=argparse.SUPPRESS,
                               choices=f.metadata.get("choices"), metavar=kind.__name__.upper()
                               if "choices" not in f.metadata else None, help=help_text)
        added.append(f.name)
    return added


def _aliases_of(name: str) -> str:
    others = [alias for alias, target in attention.aliases().items() if target == name]
    return f" (also --attention {', '.join(others)})" if others else ""


def _alias_list() -> str:
    return ", ".join(f"{alias} = {name}" for alias, name in attention.aliases().items()) or "none"


def _other_options(chosen_task: str, chosen_attention: str) -> str:
    """The epilog of --help: every task and variant with its one-line summary, and the options of the others."""
    lines = ["tasks and attention variants (the options of those not chosen; select one to use them):"]
    for kind, registry, chosen in (("task", synthetic, chosen_task), ("attention", attention, chosen_attention)):
        for name in registry.names():
            entry = registry.get(name)
            also = _aliases_of(name) if kind == "attention" else ""
            lines.append(f"  --{kind} {name}: {entry.summary}{also}")
            if name != registry.get(chosen).name:
                fields = [_flag(f.name) for f in dataclasses.fields(entry.config)]
                lines.append(f"      {' '.join(fields) or '(no options)'}")
    return "\n".join(lines)


def _recipe_help(task_name: str) -> str:
    bare = [name for name in synthetic.names() if default_recipe(name) == NO_RECIPE]
    told = [f"{name}: {recipe.summary} (the default for --task {recipe.task})" for name, recipe in RECIPES.items()]
    return (f"start from a recipe's settings; a flag or FIELD=VALUE wins over it. {'. '.join(told)}. "
            f"{NO_RECIPE}: every field at its own default (the default for the tasks without a recipe: "
            f"{', '.join(bare)}). "
            f"Default here: {default_recipe(task_name)}")


def build_parser(task_name: str, attention_name: str,
                 recipe_name: str | None = None) -> tuple[argparse.ArgumentParser, dict[str, list[str]]]:
    """The parser for one task and variant; ``recipe_name`` (default: the task's own) sets the defaults it
    shows. A recipe of another task shows none: :func:`parse` refuses it."""
    recipe_name = default_recipe(task_name) if recipe_name is None else recipe_name
    try:
        preset = recipe_sections(recipe_name, task_name, attention.get(attention_name).name)
    except ConfigError:
        preset = recipe_sections(NO_RECIPE, task_name, attention_name)
    parser = cli.Parser(
        prog="python -m experiments.run",
        description="Train one model on one synthetic task and cache the result as JSON.",
        epilog=_other_options(task_name, attention_name),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("overrides", nargs="*", metavar="FIELD=VALUE",
                        help="dotted overrides, e.g. task.name=mqar model.attention.name=rela train.steps=2000")
    parser.add_argument("--task", choices=synthetic.names(), default=task_name, metavar="NAME",
                        help=f"synthetic task (default: mqar); one of {synthetic.names()}")
    parser.add_argument("--attention", choices=attention.names(include_aliases=True), default=attention_name,
                        metavar="NAME",
                        help=f"attention variant (default: softmax); one of {attention.names()}; "
                             f"aliases: {_alias_list()}")
    parser.add_argument("--recipe", choices=recipe_names(), default=recipe_name, metavar="NAME",
                        help=_recipe_help(task_name))
    parser.add_argument("--results-dir", default=None, help="result cache root (default: $RESULTS_DIR or results/)")
    parser.add_argument("--force", action="store_true", help="run even if the result is cached, replacing it")
    parser.add_argument("--dry-run", action="store_true", help="print the config and its cache path, run nothing")
    parser.add_argument("--lock-timeout", type=cli.lock_seconds, default=None, metavar="SECONDS",
                        help="give up (exit 1) after waiting this long for another runner's lock on this run")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--log", choices=tracking.KINDS, default="none",
                        help="send each evaluation to TensorBoard (<results>/tensorboard/<run id>) or W&B (offline "
                             "unless WANDB_MODE says otherwise); each needs its extra installed")
    parser.add_argument("--json", action="store_true", help="print the whole result as JSON instead of a summary")
    shown = attention.get(attention_name).name
    groups = {
        "task": add_config_flags(parser, synthetic.get(task_name).config, "task.", task_name,
                                 recipe=(recipe_name, preset["task"])),
        "attention": add_config_flags(parser, attention.get(attention_name).config, "model.attention.", shown),
        "model": add_config_flags(parser, ModelConfig, "model.", "", skip=("attention",),
                                  recipe=(recipe_name, preset["model"])),
        "train": add_config_flags(parser, TrainConfig, "train.", "", recipe=(recipe_name, preset["train"])),
    }
    return parser, groups


def _choose(argv: list[str], flag: str, dotted: str | None, valid: list[str], default: str) -> str:
    """Read ``--task`` / ``--attention`` / ``--recipe`` (or ``task.name=`` / ``model.attention.name=``) before
    the full parser exists (its flags and defaults depend on them)."""
    pre = cli.Parser(add_help=False)
    pre.add_argument(flag, default=default)
    value = getattr(pre.parse_known_args(argv)[0], flag.lstrip("-"))
    for item in argv:
        if dotted is not None and item.startswith(f"{dotted}="):
            value = _value(item.split("=", 1)[1])
    if value not in valid:
        # Let the full parser report it, with the list of valid names and exit status 2.
        return default
    return value


def parse(argv: list[str]) -> tuple[argparse.Namespace, RunConfig]:
    task_name = _choose(argv, "--task", "task.name", synthetic.names(), "mqar")
    attention_name = _choose(argv, "--attention", "model.attention.name", attention.names(include_aliases=True),
                             "softmax")
    recipe_name = _choose(argv, "--recipe", None, recipe_names(), default_recipe(task_name))
    parser, groups = build_parser(task_name, attention_name, recipe_name)
    args = parser.parse_args(argv)
    values = vars(args)
    picked = {group: {name: values[name] for name in fields if name in values} for group, fields in groups.items()}
    try:
        # The recipe first, then the flags, then the dotted overrides: the most explicit wins.
        preset = recipe_sections(args.recipe, task_name, attention.get(attention_name).name)
        data = {"task": {"name": args.task, **preset["task"], **picked["task"]},
                "model": {**preset["model"], **picked["model"],
                          "attention": {"name": args.attention, **picked["attention"]}},
                "train": {**preset["train"], **picked["train"]}}
        for item in args.overrides:
            field, equals, text = item.partition("=")
            if not equals or not field:
                raise ConfigError(f"{item!r} is not FIELD=VALUE (e.g. train.steps=2000); fields are dotted paths "
                                  "under task, model, model.attention and train")
            set_dotted(data, field, _value(text), "override")
        config = RunConfig.from_dict(data)  # the sweep files' validation: types, ranges, unknown keys
        resolve_device(config.train.device)  # an unavailable device is bad input too
        check_fits(config)  # arithmetic on the config only: nothing is allocated
        check_compatible(config)
        tracking.check_available(args.log)
        if not args.dry_run:
            if args.log == "tensorboard":  # no event written through a link out of the results folder
                tracking.log_folder(results_dir(args.results_dir), config.run_id(), None)
            check_results_dir(args.results_dir)
            check_task_folder(config, args.results_dir)
    except ConfigError as error:
        parser.error(str(error))
    return args, config


def _value(text: str) -> Any:
    """A dotted override's value: JSON where it parses (numbers, true/false, null), else the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def main(argv: list[str] | None = None) -> int:
    args, config = parse(sys.argv[1:] if argv is None else argv)
    if args.dry_run:
        print(json.dumps({"key": config.key(), "path": str(result_path(config, args.results_dir)),
                          "recipe": args.recipe, "config": config.to_dict()}, indent=1))
        return 0
    try:
        result, cached = run(config, root=args.results_dir, progress=not args.no_progress, force=args.force,
                             lock_timeout=args.lock_timeout, log=args.log)
    except KeyboardInterrupt:
        print(f"\ninterrupted: {config.run_id()} resumes from its last checkpoint when run again", file=sys.stderr)
        return 130
    except LockTimeout as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except Exception as error:  # noqa: BLE001 - a run that raises is a recorded failure, not a traceback
        try:
            record_failure(config, error, args.results_dir)
        except NoSpace as full:  # the disk that stopped the run cannot hold its failure record either
            print(f"error: {config.run_id()}: {full}; nothing was recorded: free space and run it again",
                  file=sys.stderr)
            return 2
        print(f"error: {config.run_id()} failed: {type(error).__name__}: {' '.join(str(error).split())[:300]} "
              f"(traceback in {failure_path(config, args.results_dir)})", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(describe(result, saved_at=str(result_path(config, args.results_dir)) + ("  (cached)" if cached else "")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
