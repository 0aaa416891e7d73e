"""What the fuzz targets share: a byte stream cut as a network cuts it."""


def chunks(data, cuts):
    """*data* cut at the positions *cuts* (taken modulo its length + 1)."""
    points = sorted({cut % (len(data) + 1) for cut in cuts})
    pieces, start = [], 0
    for point in points + [len(data)]:
        pieces.append(data[start:point])
        start = point
    return pieces
