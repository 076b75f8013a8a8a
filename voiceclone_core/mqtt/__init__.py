"""The MQTT door: Home Assistant discovery, speak commands, playback on media players."""
