"""The lessons' multiple-choice questions: the right letter, and why each choice is right or wrong.

One source for both sides of a quiz:

- the learner's instant feedback, :func:`lazysignals.checks.check_quiz`,
  which answers a choice with the reason it is right or wrong, right away;
- the grader's verdict, :class:`lazysignals.judges.Choice`, which checks the
  letter outside the learner's kernel.

A question is keyed by (lesson, variable). ``why`` holds one reason per
letter; the reason of the right letter is what the learner reads after
choosing it. The notebooks never print the answer before the learner chooses.
"""

from __future__ import annotations

QUIZZES: dict[tuple[str, str], dict] = {
    ("02_loading", "faster_format"): {
        "answer": "B",
        "why": {
            "A": "HDF5's single file is the slow side here: the HDF5 library is not safe to call from "
                 "several threads, so h5py lets one thread at a time read, and gzip decompresses slowly.",
            "B": "each zarr chunk is its own compressed object, so dask's threads read and decompress "
                 "different chunks at the same time, and blosc works without holding Python's lock.",
            "C": "the numbers and the sum are the same, but reading is not: how many chunks can be "
                 "read and decompressed at once decides the time, not the arithmetic.",
            "D": "the .zspy data is compressed (look at the compressor printed above); it is a fast "
                 "compressor working on several chunks at once that makes it quick.",
        },
    },
    ("04_chunking", "transpose_answer"): {
        "answer": "B",
        "why": {
            "A": "s.T changes only which axes HyperSpy calls navigation and which signal: the file "
                 "on disk is the same, so an image of one detector pixel reads the same chunks as before.",
            "B": "s.T moves no data; with equal chunk lengths on every axis a pattern and a one-pixel "
                 "image each read the chunks they read before, so both stay cheap.",
            "C": "a pattern still reads the same chunks: the chunks on disk do not change when "
                 "HyperSpy relabels the axes.",
        },
    },
    ("09_scaling_out", "answer"): {
        "answer": "C",
        "why": {
            "A": "writing one HDF5 file from several processes at once is exactly what HDF5 does not "
                 "allow without special builds; HyperSpy does not support .hspy with the distributed scheduler.",
            "B": "the workers do not send the file's chunks to each other; each reads its own, and "
                 "HyperSpy does not support .hspy with the distributed scheduler at all.",
            "C": "zarr keeps every chunk as its own object, so workers read and write independently; "
                 "HyperSpy supports .zspy, not .hspy, with the distributed scheduler.",
            "D": "nothing converts the file for you: HyperSpy refuses .hspy with the distributed "
                 "scheduler, and you convert it once yourself with s.save('data.zspy').",
        },
    },
}


def quiz(lesson: str, variable: str) -> dict:
    """The question ``variable`` of ``lesson``: {"answer": letter, "why": {letter: reason}}."""
    try:
        return QUIZZES[(lesson, variable)]
    except KeyError:
        raise KeyError(f"no quiz {variable!r} in lesson {lesson!r}: add it to lazysignals/quizzes.py") from None
