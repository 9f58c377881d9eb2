"""One router per resource; handlers stay thin: parse -> validate -> submit -> encode."""
