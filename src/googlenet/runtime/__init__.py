"""What the other layers run on: device and precision, processes (torchrun), files written
atomically and read safely."""
