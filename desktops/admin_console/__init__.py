"""The tenant admin console: dashboard, desktops and bulk actions, pools, private templates."""
