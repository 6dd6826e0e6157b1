"""HTTP and WebSocket surface: app factory, auth, routes, sockets."""
