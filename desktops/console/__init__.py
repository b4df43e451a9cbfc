"""The desktop console: tickets, the WebSocket-to-VNC proxy, sessions, activity and recordings."""
