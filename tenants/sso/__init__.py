"""Single sign-on per tenant, routed by email domain: each tenant's OpenID Connect providers (on django-allauth) and
LDAP / Active Directory servers (a directory password checked on our own page, through ldap3)."""
