# The injector image: `capacity` and the broker clients, nothing else (no build tools, no cache).
# For `capacity inject --shards N -f k8s --image ...` in a cluster without internet access, or to
# pin what the pods run to an image you built and scanned:
#   docker build -t registry.example.com/capacity:0.1.0 .
#   docker push registry.example.com/capacity:0.1.0
# The Job's pods run `sh -c "capacity inject ..."`, which replaces this ENTRYPOINT.
FROM python:3.12-slim
WORKDIR /src
COPY pyproject.toml README.md ./
COPY capacity ./capacity
RUN pip install --no-cache-dir '.[brokers]' && rm -rf /src
WORKDIR /work
ENTRYPOINT ["capacity"]
CMD ["--help"]
