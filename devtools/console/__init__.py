"""The reference frontend: a small server that plays the scheduling app in front of the service."""
