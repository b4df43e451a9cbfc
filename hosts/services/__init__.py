"""Business logic of the hosts app: registration, health, devices and images."""
