"""Where things are (地点): county, township and village of an org path, and names back to units."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.store.models import OrgUnit

COUNTY, TOWNSHIP, VILLAGE = "county", "township", "village"


@dataclass
class Places:
    """Every org unit, loaded once per report: paths to names and names to units."""

    by_id: dict[int, OrgUnit]

    @classmethod
    def load(cls, session: Session) -> Places:
        return cls({u.id: u for u in session.scalars(select(OrgUnit))})

    def on_path(self, path: str, kind: str) -> OrgUnit | None:
        for unit_id in (int(p) for p in path.strip("/").split("/")):
            unit = self.by_id.get(unit_id)
            if unit is not None and unit.kind == kind:
                return unit
        return None

    def name_on_path(self, path: str, kind: str) -> str:
        unit = self.on_path(path, kind)
        return unit.name if unit is not None else ""

    def child(self, parent: OrgUnit | None, kind: str, name: str) -> OrgUnit | None:
        """The unit of ``kind`` named ``name`` (or coded ``name``) under ``parent`` (any, if None)."""
        for unit in self.by_id.values():
            matches = unit.kind == kind and name in (unit.name, unit.code)
            if matches and (parent is None or unit.parent_id == parent.id):
                return unit
        return None

    def counties(self) -> list[OrgUnit]:
        return sorted((u for u in self.by_id.values() if u.kind == COUNTY), key=lambda u: u.code)
