"""What the dashboard's pages share: the sidebar shell, session-state keys, cached images and the widgets of the
Analyze and Models pages. Only ``pages/`` and ``app.py`` import it; it imports ``core`` and streamlit."""
