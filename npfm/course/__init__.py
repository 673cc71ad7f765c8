"""The coursework kit: assignments generated from the textbook floor, graded
by gradient checks.

    npfm course list                         the assignments, their functions and points
    npfm course build OUT [--assignments 1,2]
        OUT/student     a runnable copy of npfm with the asked functions stubbed,
                        notebooks, public checks, a README (pip install -e OUT/student)
        OUT/autograder  hidden tests and their reference .npz data, grade.py,
                        run_autograder and setup.sh for Gradescope
        OUT/instructor  the notebooks with nbgrader's solution markers
    npfm course grade STUDENT_DIR [--autograder DIR] [--json results.json] [--timeout S]

assignments.py lists what each assignment asks and its tests; build.py makes
the folders; grade.py (NumPy and the standard library only) runs each test
in its own process. The instructor's guide: docs/course.md.
"""

from .assignments import ASSIGNMENTS, TOLERANCE, select  # noqa: F401
