"""Business logic of the tenants app; views, the API and tasks call these."""
