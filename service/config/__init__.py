"""Configuration from the environment, read once into frozen `Settings` (README
"Configuration").
"""
