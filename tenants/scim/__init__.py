"""SCIM 2.0 provisioning: a tenant's directory (Entra ID, Okta) adds, changes and removes its people."""
