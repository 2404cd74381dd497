"""The ``render`` stage: ``report.html`` and index pages from a run folder alone (no TensorFlow).

``render`` writes the report; ``sections/`` builds each report section (one
module per template under ``templates/sections/``) on a shared ``context``;
``figures`` draws with matplotlib; ``templates`` sets up Jinja; ``index`` writes
the index pages; ``formatting`` is how numbers read.
"""
