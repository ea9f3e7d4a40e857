"""What Snakemake's command line says before Snakemake has acted on it: whether it only plans,
and whether it sends its jobs to other machines. The Snakefile is read before Snakemake picks
its executor, and what it plans depends on both."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def dry_run(workflow: Any, argv: list[str]) -> bool:
    """Whether Snakemake only plans (`-n`). Its executor, which knows, is chosen after the
    Snakefile is read, so the command line says it here."""
    if getattr(workflow, "dryrun", False):
        return True
    return any(arg in ("--dry-run", "--dryrun") or (
        arg.startswith("-") and not arg.startswith("--") and "n" in arg[1:]) for arg in argv[1:])


# Executors that run the jobs on this machine.
LOCAL_EXECUTORS = ("local", "dryrun", "touch")


def submits_jobs(argv: list[str], env: dict[str, str], profile_dirs: list[Path]) -> bool:
    """Whether this Snakemake sends its jobs to other machines (`--executor slurm`, given
    directly or by a `--profile` or $SNAKEMAKE_PROFILE). Snakemake picks its executor after it
    has read the Snakefile, so the command line and the profile's config.yaml say it here; a
    profile named without a path is looked up in `profile_dirs`."""
    executor, profiles = None, [env["SNAKEMAKE_PROFILE"]] if env.get("SNAKEMAKE_PROFILE") else []
    args = argv[1:]
    for i, arg in enumerate(args):
        for flag in ("--executor", "-e", "--profile"):
            if arg == flag and i + 1 < len(args):
                value = args[i + 1]
            elif arg.startswith(f"{flag}=") and flag.startswith("--"):
                value = arg.split("=", 1)[1]
            else:
                continue
            if flag == "--profile":
                profiles.append(value)
            else:
                executor = value
    for profile in profiles if executor is None else []:
        for base in [Path.cwd(), *profile_dirs]:
            found = base / profile / "config.yaml"
            if found.is_file():
                executor = (yaml.safe_load(found.read_text()) or {}).get("executor", executor)
                break
    return executor is not None and executor not in LOCAL_EXECUTORS
