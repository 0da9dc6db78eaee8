"""Theory notebooks (percent-format scripts) and the helpers they share (``_mc``)."""
