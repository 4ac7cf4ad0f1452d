"""Groups of runs: one config trained under several seeds (`lstmctl train CONFIG --seeds 0,1,2`).

A group is a tag on its runs plus a small record, never a second copy of them:

- each member's run.json carries `"group": "<group id>"` (beside its own `"seed"`, as every run's does);
- `<runs>/.groups/<group id>.json` records what the group was asked to be: name, seeds, config source,
  `--set` overrides, the resolved config without its seed (so `resume GROUP` can start a seed that
  never started) and when it was created.

The members are the runs that carry the tag, read from their run.json; deleting a member's directory
removes it from the group. A group id is `<UTC yyyymmdd-HHMMSS>-<name>-x<number of seeds>`, e.g.
`20260101-120000-sin2cos-x3`: it is a valid run id, `create_run` never gives it to a run, and
`resolve` accepts it (or a unique prefix of it) wherever a run is read.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from lstmctl.errors import UserError
from lstmctl.runs import (GROUPS_DIR, RunDir, check_run_id, find_run, group_ids, group_record_path, list_runs, runs_root,
                          utcnow, write_json)
from lstmctl.stats import finite_values, summarize


@dataclass(frozen=True)
class Group:
    id: str
    root: Path

    @property
    def record_path(self) -> Path:
        return group_record_path(self.root, self.id)

    def record(self) -> dict[str, Any]:
        """The group's record; {} when it has none (a group known only from its members' tags)."""
        try:
            data = json.loads(self.record_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as e:
            raise UserError(f"group {self.id} is damaged: {self.record_path} cannot be read ({e})") from None
        return data if isinstance(data, dict) else {}

    def members(self, runs: list[RunDir] | None = None) -> list[RunDir]:
        """The runs tagged with this group, by seed."""
        return members_of(self.id, runs if runs is not None else list_runs(self.root))

    def seeds(self) -> list[int]:
        seeds = self.record().get("seeds")
        if isinstance(seeds, list) and all(isinstance(s, int) for s in seeds):
            return seeds
        return [s for s in (member_info(r).get("seed") for r in self.members()) if isinstance(s, int)]


def member_info(run: RunDir) -> dict[str, Any]:
    """run.json, or {} for a damaged run (a group lists what it can read)."""
    try:
        info = run.info()
    except UserError:
        return {}
    return info if isinstance(info, dict) else {}


def members_of(group_id: str, runs: list[RunDir]) -> list[RunDir]:
    tagged = []
    for run in runs:
        info = member_info(run)
        if info.get("group") == group_id:
            seed = info.get("seed")
            tagged.append(((not isinstance(seed, int), seed if isinstance(seed, int) else 0, run.id), run))
    return [run for _, run in sorted(tagged, key=lambda t: t[0])]


def all_group_ids(root: Path, runs: list[RunDir] | None = None) -> list[str]:
    """Every group id: those with a record and those only seen as a tag on a run."""
    tags = {member_info(r).get("group") for r in (runs if runs is not None else list_runs(root))}
    return sorted(set(group_ids(root)) | {t for t in tags if isinstance(t, str) and t})


def create_group(name: str, seeds: list[int], runs_dir=None, **record: Any) -> Group:
    """Reserve a new group id (never an existing run's or group's) and write its record."""
    root = runs_root(runs_dir)
    try:
        (root / GROUPS_DIR).mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create the runs directory {root}: {e.strerror}; choose another with --runs-dir") from e
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    base = f"{stamp}-{name}-x{len(seeds)}"
    for n in range(1, 10_000):
        gid = base if n == 1 else f"{base}-{n}"
        if (root / gid).exists():
            continue
        path = group_record_path(root, gid)
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))  # exclusive, as create_run's mkdir
        except FileExistsError:
            continue
        write_json(path, {"id": gid, "name": name, "seeds": list(seeds), "created": utcnow(), **record})
        return Group(gid, root)
    raise UserError(f"cannot find a free group id for {base} in {root}")


def discard_group(group: Group) -> None:
    """Remove the record of a group none of whose runs could start (and the folders it created, if empty)."""
    group.record_path.unlink(missing_ok=True)
    for folder in (group.record_path.parent, group.root):
        try:
            folder.rmdir()
        except OSError:  # not empty: runs or other groups live there
            break


def resolve(ref: str, runs_dir=None) -> RunDir | Group:
    """A run or a group, by full id, unique prefix, or `latest` (the newest run)."""
    check_run_id(ref)
    root = runs_root(runs_dir)
    if ref == "latest" or (root / ref).is_dir():
        return find_run(ref, runs_dir)
    runs = list_runs(root)
    gids = all_group_ids(root, runs)
    if ref in gids:
        return Group(ref, root)
    groups = [g for g in gids if g.startswith(ref)]
    if groups:
        found = [r.id for r in runs if r.id.startswith(ref)] + groups
        if len(found) == 1:
            return Group(groups[0], root)
        shown = ", ".join(found[:5]) + (" ..." if len(found) > 5 else "")
        raise UserError(f"id {ref!r} is ambiguous: it matches {shown}; give more of the id")
    return find_run(ref, runs_dir)  # no group: the run errors (none, ambiguous) as they always were


def resolve_group(ref: str, runs_dir=None) -> Group | None:
    """The group `ref` names, or None when it names a run."""
    found = resolve(ref, runs_dir)
    return found if isinstance(found, Group) else None


def single_run(ref: str, runs_dir, what: str) -> RunDir:
    """A run for a command that needs exactly one (`what`: e.g. "predict"); a group is one line of refusal."""
    found = resolve(ref, runs_dir)
    if isinstance(found, Group):
        members = [r.id for r in found.members()]
        some = ", ".join(members[:3]) + (" ..." if len(members) > 3 else "")
        raise UserError(f"{found.id} is a group of {len(members)} runs and {what} needs a single run; "
                        f"give one of them{': ' + some if some else ''}")
    return found


def members_or_error(group: Group) -> list[RunDir]:
    members = group.members()
    if not members:
        raise UserError(f"group {group.id} has no runs (none started, or their directories were deleted)")
    return members


def scalars(metrics: dict[str, Any]) -> dict[str, float]:
    """The finite number-valued entries of a metrics dict (lists and text left out)."""
    return {k: v for k, v in metrics.items() if finite_values([v])}


def aggregate(per_run: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """{metric: {"mean", "std", "n", "ci95"}} over the runs' scalar metrics, in the order they first appear."""
    names: list[str] = []
    for m in per_run:
        names += [k for k in scalars(m) if k not in names]
    return {k: summarize([m.get(k) for m in per_run]) for k in names}
