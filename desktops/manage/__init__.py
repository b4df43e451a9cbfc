"""The tenant admin pages ("manage"): dashboard, desktops and bulk actions, pools, private templates."""
