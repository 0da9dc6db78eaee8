"""Run one synthetic experiment from the command line.

    python -m experiments.run task.name=mqar model.attention.name=rela task.seq_len=128 \\
        task.num_kv_pairs=16 model.d_model=64 train.seed=0

Every field is set by its dotted path, as in sweep files and result JSON,
and checked by the same code (values are read as JSON where they parse,
else as text: ``train.lr=3e-3``, ``model.token_mixing=shift``,
``model.mlp=false``). Each field of the chosen task, attention variant,
model and training config is also a flag (``--seq-len 128``; ``--help``
lists them with their defaults for the chosen ``--task`` and
``--attention``); a dotted value wins over a flag. The result is
one JSON file in the result cache; a config that has been run before is a
cache hit and returns at once. Bad input (an unknown name, a task that cannot
be built) exits with status 2 and writes nothing.
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
from experiments import attention, cli
from experiments.config import ConfigError, field_types
from experiments.model import ModelConfig
from experiments.cache import (LockTimeout, check_results_dir, check_task_folder, failure_path, record_failure,
                               result_path)
from experiments.runs import RunConfig, check_compatible, check_fits, describe, run
from experiments.sweep_files import set_dotted
from experiments.train import TrainConfig, resolve_device


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _scalar_type(hint: Any) -> type:
    """``int`` for ``int``, ``float`` for ``float | None``, and so on."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
    return hint


def add_config_flags(parser: argparse.ArgumentParser, cls: type, title: str, *, skip: tuple[str, ...] = ()) -> list[str]:
    """One flag per dataclass field, its help and choices taken from the field's metadata."""
    group = parser.add_argument_group(title)
    hints = field_types(cls)
    added = []
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        kind = _scalar_type(hints[f.name])
        default = f.default
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


def _other_options(chosen_task: str, chosen_attention: str) -> str:
    """The epilog of --help: every task and variant with its one-line summary, and the options of the others."""
    lines = ["tasks and attention variants (the options of those not chosen; select one to use them):"]
    for kind, registry, chosen in (("task", synthetic, chosen_task), ("attention", attention, chosen_attention)):
        for name in registry.names():
            entry = registry.get(name)
            lines.append(f"  --{kind} {name}: {entry.summary}")
            if name != registry.get(chosen).name:
                fields = [_flag(f.name) for f in dataclasses.fields(entry.config)]
                lines.append(f"      {' '.join(fields) or '(no options)'}")
    return "\n".join(lines)


def build_parser(task_name: str, attention_name: str) -> tuple[argparse.ArgumentParser, dict[str, list[str]]]:
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
                        help=f"attention variant (default: softmax); one of {attention.names()}")
    parser.add_argument("--results-dir", default=None, help="result cache root (default: $RESULTS_DIR or results/)")
    parser.add_argument("--force", action="store_true", help="run even if the result is cached, replacing it")
    parser.add_argument("--dry-run", action="store_true", help="print the config and its cache path, run nothing")
    parser.add_argument("--lock-timeout", type=cli.lock_seconds, default=None, metavar="SECONDS",
                        help="give up (exit 1) after waiting this long for another runner's lock on this run")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--json", action="store_true", help="print the whole result as JSON instead of a summary")
    groups = {
        "task": add_config_flags(parser, synthetic.get(task_name).config, f"task {task_name}"),
        "attention": add_config_flags(parser, attention.get(attention_name).config, f"attention {attention_name}"),
        "model": add_config_flags(parser, ModelConfig, "model", skip=("attention",)),
        "train": add_config_flags(parser, TrainConfig, "training"),
    }
    return parser, groups


def _choose(argv: list[str], flag: str, dotted: str, valid: list[str], default: str) -> str:
    """Read ``--task`` / ``--attention`` (or ``task.name=`` / ``model.attention.name=``) before the full parser
    exists (its flags depend on them)."""
    pre = cli.Parser(add_help=False)
    pre.add_argument(flag, default=default)
    value = getattr(pre.parse_known_args(argv)[0], flag.lstrip("-"))
    for item in argv:
        if item.startswith(f"{dotted}="):
            value = _value(item.split("=", 1)[1])
    if value not in valid:
        # Let the full parser report it, with the list of valid names and exit status 2.
        return default
    return value


def parse(argv: list[str]) -> tuple[argparse.Namespace, RunConfig]:
    task_name = _choose(argv, "--task", "task.name", synthetic.names(), "mqar")
    attention_name = _choose(argv, "--attention", "model.attention.name", attention.names(include_aliases=True),
                             "softmax")
    parser, groups = build_parser(task_name, attention_name)
    args = parser.parse_args(argv)
    values = vars(args)
    picked = {group: {name: values[name] for name in fields if name in values} for group, fields in groups.items()}
    data = {"task": {"name": args.task, **picked["task"]},
            "model": {**picked["model"], "attention": {"name": args.attention, **picked["attention"]}},
            "train": picked["train"]}
    try:
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
        if not args.dry_run:
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
                          "config": config.to_dict()}, indent=1))
        return 0
    try:
        result, cached = run(config, root=args.results_dir, progress=not args.no_progress, force=args.force,
                             lock_timeout=args.lock_timeout)
    except KeyboardInterrupt:
        print(f"\ninterrupted: {config.run_id()} resumes from its last checkpoint when run again", file=sys.stderr)
        return 130
    except LockTimeout as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except Exception as error:  # noqa: BLE001 - a run that raises is a recorded failure, not a traceback
        record_failure(config, error, args.results_dir)
        print(f"error: {config.run_id()} failed: {type(error).__name__}: {' '.join(str(error).split())[:300]} "
              f"(traceback in {failure_path(config, args.results_dir)})", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(describe(result))
        print(f"result   {result_path(config, args.results_dir)}" + ("  (cached)" if cached else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
