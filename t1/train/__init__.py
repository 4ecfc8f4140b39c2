"""Trainers (thin loops over t1.algo), run directories, checkpoints, distributed setup."""
