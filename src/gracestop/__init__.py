import anyio
