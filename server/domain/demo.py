"""The demo shop of ``dashdesk up --demo``: one site, one device, three mapped buttons."""

from __future__ import annotations

from sqlalchemy import select

from server.db import Database
from server.models import ButtonMapping, Category, Device, Site

DEMO_SITE = ("shop-demo", "Demo shop")
DEMO_DEVICE = "shop-demo"
DEMO_BUTTONS = {"b1": ("printer", "Printer"), "b2": ("till", "Till"), "b3": ("sales-app", "Sales app")}


def setup_demo(db: Database) -> None:
    """Create the demo shop if it is not there (an admin's later changes stay)."""
    with db.write() as s:
        site = s.scalar(select(Site).where(Site.code == DEMO_SITE[0]))
        if site is None:
            site = Site(code=DEMO_SITE[0], name=DEMO_SITE[1])
            s.add(site)
        device = s.scalar(select(Device).where(Device.device_id == DEMO_DEVICE))
        if device is None:
            s.add(Device(device_id=DEMO_DEVICE, status="active", site=site))
        mapped = set(s.scalars(select(ButtonMapping.button).where(ButtonMapping.device_id == DEMO_DEVICE)))
        for button, (slug, label) in DEMO_BUTTONS.items():
            if button not in mapped:
                category = s.scalar(select(Category).where(Category.slug == slug))
                s.add(ButtonMapping(device_id=DEMO_DEVICE, button=button, press="", category=category, label=label))
