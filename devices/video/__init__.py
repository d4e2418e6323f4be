"""Camera drivers on OpenCV: a V4L2 camera (``opencv.OpencvCamera``) and a recording played
as one (``replay.ReplayCamera``), both fed by the latest-frame thread in ``grabber``.

Nothing is imported here, so ``devices.video.grabber`` can be used without loading OpenCV.
"""
