"""What runs on the pod. ``startup.agent`` is the pod agent; its ``protocol`` module is the one
contract the provider shares with it (imported by both sides)."""
