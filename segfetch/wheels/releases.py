"""pip's ``--all-releases`` and ``--only-final`` (pip 26): which projects may take a
pre-release, as pip reads the two options (pip's ReleaseControl). Each takes project names
joined by commas, ":all:" or ":none:"; a name given to one leaves the other, ":all:"
empties both first. ``--pre`` is ``--all-releases :all:`` and goes with neither. Pure."""

from __future__ import annotations

from dataclasses import dataclass, field

from packaging.utils import canonicalize_name

from segfetch.errors import UsageError

OPTIONS = ("--all-releases", "--only-final")


@dataclass
class Releases:
    every: set[str] = field(default_factory=set)  # --all-releases
    final: set[str] = field(default_factory=set)  # --only-final

    def take(self, option: str, value: str) -> None:
        """One ``--all-releases`` or ``--only-final`` value, in the order given."""
        if value.startswith("-"):
            raise UsageError(f"{option} takes project names, :all: or :none:, not {value!r}")
        into, other = (self.every, self.final) if option == OPTIONS[0] else (self.final, self.every)
        names = value.split(",")
        while ":all:" in names:  # (what follows it counts only after a ":none:")
            into.clear()
            other.clear()
            into.add(":all:")
            del names[: names.index(":all:") + 1]
            if ":none:" not in names:
                return
        for name in names:
            if name == ":none:":
                into.clear()
            else:
                other.discard(canonicalize_name(name))
                into.add(canonicalize_name(name))

    def prereleases(self, name: str, pre: bool) -> bool | None:
        """True: pre-releases allowed; False: final releases only; None: pip's default
        (a pre-release where the specifier names one, or nothing else fits)."""
        key = canonicalize_name(name)
        for names, allowed in ((self.every, True), (self.final, False)):
            if key in names:
                return allowed
        for names, allowed in ((self.every, True), (self.final, False)):
            if ":all:" in names:
                return allowed
        return True if pre else None
