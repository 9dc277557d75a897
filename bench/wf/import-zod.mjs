// The floor of the zod rows in section 3: Node starting and importing zod, nothing else.
import "zod";
