// Placeholder: the flow browser's script replaces this file.
"use strict";
