"""ICAO Doc 9303 electronic machine-readable travel documents: passports and card-format
travel permits read over a contactless PC/SC reader."""
