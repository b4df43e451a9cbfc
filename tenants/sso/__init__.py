"""Single sign-on per tenant: each tenant's OpenID Connect providers, routed by email domain, on django-allauth."""
