"""Links to the world outside the box: MQTT (Home Assistant discovery, the site's arm state)."""
