"""``npfm course``: build assignments from the textbook floor and grade them."""

import os

from .. import argtypes


def _numbers(text):
    try:
        numbers = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"--assignments takes numbers separated by commas, got {text!r}") from None
    if not numbers:
        raise ValueError("--assignments is empty")
    return numbers


def _kit():
    """The kit, or a clear error in a student copy (which does not carry it)."""
    try:
        from .. import course
    except ImportError:
        raise RuntimeError("this copy of npfm has no coursework kit (a student copy): "
                           "run the public checks with python -m pytest tests") from None
    return course


def _list(args):
    _kit()
    from ..course.assignments import ASSIGNMENTS, import_name
    for a in ASSIGNMENTS.values():
        print(f"assignment {a.number}: {a.title} ({a.points:g} points, {len(a.tests)} tests)")
        for module, name in a.functions:
            points = sum(t.points for t in a.tests
                         if t.name.split(":")[0] == name)
            print(f"    {import_name(module) + '.' + name:<52} {points:>4g} points")
    return 0


def _build(args):
    _kit()
    from ..course.build import build
    numbers = _numbers(args.assignments) if args.assignments else None
    paths = build(args.out, numbers, seed=args.seed, timeout=args.timeout)
    for kind, path in paths.items():
        print(f"{kind:<11} {path}")
    return 0


def _grade(args):
    _kit()
    from ..course import grade
    if not os.path.isdir(args.student):
        raise FileNotFoundError(f"no folder {args.student}")
    autograder = args.autograder or os.path.join(os.path.dirname(os.path.abspath(args.student)),
                                                 "autograder")
    if not os.path.isfile(os.path.join(autograder, "tests.json")):
        raise FileNotFoundError(f"no autograder in {autograder} (no tests.json): give --autograder DIR")
    if args.timeout is not None and args.timeout <= 0:
        raise ValueError("--timeout must be positive")
    argv = [args.student, "--autograder", autograder]
    if args.json:
        argv += ["--json", args.json]
    if args.timeout:
        argv += ["--timeout", str(args.timeout)]
    return grade.main(argv)


def add_commands(sub):
    course = sub.add_parser("course", help="coursework: build assignments, grade them")
    commands = course.add_subparsers(dest="course_command", metavar="COMMAND")
    commands.required = True
    p = commands.add_parser("list", help="the assignments, the functions each asks, their points")
    p.set_defaults(func=_list)
    p = commands.add_parser("build", help="write OUT/student, OUT/autograder and OUT/instructor")
    p.add_argument("out", metavar="OUT")
    p.add_argument("--assignments", help="which, as 1,3 (default: all)")
    p.add_argument("--seed", type=argtypes.seed, help="seed of the hidden inputs (default: a random one)")
    p.add_argument("--timeout", type=float, default=20.0, help="seconds per test (default 20)")
    p.set_defaults(func=_build)
    p = commands.add_parser("grade", help="grade a student's copy")
    p.add_argument("student", metavar="STUDENT_DIR")
    p.add_argument("--autograder", metavar="DIR", help="default: autograder beside STUDENT_DIR")
    p.add_argument("--json", metavar="results.json", help="write Gradescope's results.json")
    p.add_argument("--timeout", type=float, metavar="S", help="seconds per test")
    p.set_defaults(func=_grade)
