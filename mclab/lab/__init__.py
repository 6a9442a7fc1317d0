"""The kit's own machinery, not a technique: what runs, checks and reports the notebooks.

``notebooks`` (the curriculum map and the papermill runner), ``report`` (the HTML report with each notebook's
headline findings; the table itself is in ``headlines``), ``record`` (the metrics a notebook's last cell keeps),
``exercise`` (PASS/FAIL checks; under the grader a fail raises), ``grading`` (the instructor's nbgrader
releases and autograding, from the answer key in the repository's ``instructor/solutions.py``, which the installed
package does not carry), ``widgets`` (sliders in front of pure figures) and
``glossary`` (English terms beside the source material's Chinese ones). Import the module you need —
``from mclab.lab import exercise, widgets`` — this package imports none of them, so ``import mclab`` stays light.
"""
