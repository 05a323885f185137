# GPU lab image: the course, its pins and the prefetched weights on the official TensorFlow GPU image
# of the pinned version. Build and run: docs/gpu-lab.md.
FROM tensorflow/tensorflow:2.21.0-gpu

ENV PIP_NO_CACHE_DIR=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    COURSE_CACHE_DIR=/opt/course-cache \
    KERAS_HOME=/opt/course-cache/keras

WORKDIR /course
COPY requirements.txt constraints.txt pyproject.toml README.md ./
# The base image already has tensorflow==2.21.0 with CUDA; the rest comes from the same pins.
RUN python -m pip install -r requirements.txt -c constraints.txt

COPY . .
RUN python -m pip install --no-deps -e . \
 && python -m ipykernel install --sys-prefix --name tf-course --display-name "Python 3 (TF course)" \
 && python -m course_lib.dev.kernel_limits install \
 && python -m course_lib.dev.release \
 && python -m course_lib prefetch

EXPOSE 8888
# JupyterLab as root needs --allow-root (course_lib.dev.lab adds it); bind all interfaces inside the
# container, and publish the port on the host's loopback only (see docs/gpu-lab.md).
CMD ["python", "-m", "course_lib.dev.lab", "--host", "0.0.0.0", "--port", "8888"]
