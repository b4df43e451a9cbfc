from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ScimConfig(AppConfig):
    name = "tenants.scim"
    label = "scim"
    verbose_name = _("Directory provisioning (SCIM)")

    def ready(self) -> None:
        # scim2-models checks emails[].value with email-validator, which by default refuses special-use and
        # internal domains (.local, .internal, .test). Directories do send such addresses (Active Directory's
        # .local forests), and Quetzal's own accounts accept them (Django's EmailValidator): the same rule here,
        # through the two settings email-validator documents for it.
        import email_validator

        email_validator.GLOBALLY_DELIVERABLE = False
        email_validator.SPECIAL_USE_DOMAIN_NAMES = []
