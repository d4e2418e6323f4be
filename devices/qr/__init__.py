"""Reading QR codes from camera frames: decoder backends, the decoding pipeline, and a
barcode reader backed by a camera."""
