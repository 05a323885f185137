# GPU lab image: the course, its pins and the prefetched weights on the official TensorFlow GPU image
# of the pinned version. Build and run: docs/gpu-lab.md.
FROM tensorflow/tensorflow:2.21.0-gpu

ENV PIP_NO_CACHE_DIR=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    COURSE_CACHE_DIR=/opt/course-cache \
    KERAS_HOME=/opt/course-cache/keras \
    VIRTUAL_ENV=/opt/course-venv \
    PATH=/opt/course-venv/bin:$PATH

WORKDIR /course
COPY requirements.txt constraints.txt pyproject.toml README.md ./
# The base image already has tensorflow==2.21.0 with CUDA; the rest comes from the same pins, into a
# venv that sees the base image's packages. Installing into the image's own Python fails on the
# TF GPU images of Ubuntu 22.04 (reported for 2.14.0-gpu): apt's python3-blinker 1.4 cannot be
# uninstalled by pip, and locust's Flask needs blinker 1.9. Inside a venv pip leaves packages
# outside it alone and installs its own version.
# (--without-pip: the base image's pip, seen through the system site-packages, installs into it.)
RUN /usr/bin/env python3 -m venv --without-pip --system-site-packages /opt/course-venv \
 && python -m pip install -r requirements.txt -c constraints.txt

COPY . .
RUN python -m pip install --no-deps -e . \
 && python -m ipykernel install --sys-prefix --name tf-course --display-name "Python 3 (TF course)" \
 && python -m course_lib.dev.kernel_limits install \
 && python -m course_lib prefetch

EXPOSE 8888
# Students' notebooks live in /course/work: mount a volume there so they outlive the container
# (docs/gpu-lab.md). Each start fills what is missing from notebooks/ and never overwrites a change.
VOLUME /course/work
# JupyterLab as root needs --allow-root (course_lib.lab adds it); bind all interfaces inside the
# container, and publish the port on the host's loopback only (see docs/gpu-lab.md).
CMD ["python", "-m", "course_lib", "lab", "--host", "0.0.0.0", "--port", "8888"]
