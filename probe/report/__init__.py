"""One self-contained HTML report from the JSON that sweep, curve and compare write.

A stage after ``finetune``: it reads result files only (never a model or a cache), so a report
can be rebuilt anywhere from a folder of results. ``html`` assembles the page and its tables;
``plots`` draws the figures as inline SVG (no network, no external CSS, JS or fonts: a
reviewer opens one file offline). Every number in a table carries ``data-path``, the place in
its JSON file it came from, so a test can check each one against the JSON.
"""
