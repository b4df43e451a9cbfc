"""Create the demo tenant, its owner and member, and an operator; print how to sign in."""

from __future__ import annotations

import json
import secrets

from allauth.account.models import EmailAddress
from django.conf import settings
from django.core.management.base import BaseCommand

from tenants.choices import Role
from tenants.models import Membership, Tenant, User

PEOPLE = (
    ("owner@demo.quetzal.test", "Olivia Owner", Role.OWNER, False),
    ("member@demo.quetzal.test", "Max Member", Role.MEMBER, False),
    ("operator@demo.quetzal.test", "Oscar Operator", None, True),
)


class Command(BaseCommand):
    help = "Create (once) the demo tenant with an owner, a member and an operator, and print their passwords."

    def handle(self, *args, **options) -> None:
        path = settings.VAR_DIR / "demo-credentials.json"
        credentials = json.loads(path.read_text()) if path.exists() else {}
        tenant, _ = Tenant.objects.get_or_create(slug="demo", defaults={"name": "Demo Organisation"})
        for email, name, role, is_staff in PEOPLE:
            user = User.objects.filter(email=email).first()
            if user is None or email not in credentials:
                credentials[email] = secrets.token_urlsafe(9)
                user = user or User(email=email, full_name=name)
                user.set_password(credentials[email])
                user.is_staff = user.is_superuser = is_staff
                user.save()
            EmailAddress.objects.get_or_create(user=user, email=email, defaults={"verified": True, "primary": True})
            if role is not None:
                Membership.objects.get_or_create(user=user, tenant=tenant, defaults={"role": role})
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(credentials, indent=2))
        path.chmod(0o600)
        self.stdout.write(f"Demo sign-ins (also in {path}):")
        for email, _, role, is_staff in PEOPLE:
            self.stdout.write(f"  {email:32} {credentials[email]:16} {'operator' if is_staff else role}")
