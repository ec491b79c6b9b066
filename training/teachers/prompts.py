"""Few-shot prompts that ask a large model for CoT, PoT or EoT in the student's formats.

The examples were written for this project (they are not taken from any evaluation set) and each
one is checked by the tests with the real engine. The user turns use the student's prompt
(`eotd.prompts.build_prompt`), so the teacher writes exactly what the student will learn.
EoT follows XoT's conventions: ``%`` comment lines, an unknown introduced as ``name = x``,
relations stated as the problem gives them (not pre-computed), and a final ``ans = name``.
"""

from __future__ import annotations

from eotd.prompts import THOUGHTS, build_prompt

SYSTEM: dict[str, str] = {
    "cot": (
        "You solve grade-school math word problems. Reason step by step in short sentences, "
        'then end with a line "The answer is N." where N is a number.'
    ),
    "pot": (
        "You solve grade-school math word problems by writing a short Python program. Use "
        "meaningful variable names, one step a line, no imports, no functions and no print; "
        "the last line sets the variable ans to the answer. Write only the program."
    ),
    "eot": (
        "You translate grade-school math word problems into a system of equations that a "
        "solver will solve. Write one equation a line. Start a line with % for a comment that "
        "quotes the fact used. Give each quantity a snake_case name; introduce an unknown "
        "quantity with a line 'name = x' (or y, z). State the relations as the problem gives "
        "them, do not compute or simplify. End with 'ans = name' for the quantity asked. "
        "Write only the equations."
    ),
}

#: (question, {thought: target}, answer) written for this project.
EXAMPLES: list[tuple[str, dict[str, str], float]] = [
    (
        "A baker makes 36 muffins. She puts them in boxes of 4 and sells each box for $5. "
        "How much money does she make if she sells all the boxes?",
        {
            "cot": (
                "She fills 36 / 4 = 9 boxes.\n"
                "Each box sells for $5, so she makes 9 * 5 = $45.\n"
                "The answer is 45."
            ),
            "pot": "muffins = 36\nper_box = 4\nprice = 5\nboxes = muffins / per_box\n"
            "ans = boxes * price",
            "eot": (
                "% A baker makes 36 muffins.\nmuffins = 36\n"
                "% She puts them in boxes of 4.\nboxes = muffins / 4\n"
                "% She sells each box for $5.\nmoney = boxes * 5\n"
                "ans = money"
            ),
        },
        45,
    ),
    (
        "Leo is 3 times as old as his sister. In 4 years the sum of their ages will be 32. "
        "How old is Leo now?",
        {
            "cot": (
                "In 4 years both are 4 years older, so now their ages add up to 32 - 4 - 4 = 24.\n"
                "Leo's age is 3 parts and his sister's is 1 part, 4 parts in all, "
                "so one part is 24 / 4 = 6.\n"
                "Leo is 3 * 6 = 18.\n"
                "The answer is 18."
            ),
            "pot": "sum_later = 32\nyears = 4\nsum_now = sum_later - 2 * years\n"
            "sister_age = sum_now / (3 + 1)\nans = 3 * sister_age",
            "eot": (
                "% Let the sister's age be x.\nsister_age = x\n"
                "% Leo is 3 times as old as his sister.\nleo_age = 3 * sister_age\n"
                "% In 4 years the sum of their ages will be 32.\n"
                "(leo_age + 4) + (sister_age + 4) = 32\n"
                "ans = leo_age"
            ),
        },
        18,
    ),
    (
        "A shirt costs $40. It is on sale for 25% off, and then Maria pays 10% sales tax on "
        "the sale price. How much does she pay?",
        {
            "cot": (
                "The discount is 25% of $40, which is 0.25 * 40 = $10.\n"
                "The sale price is 40 - 10 = $30.\n"
                "The tax is 10% of $30, which is 0.1 * 30 = $3.\n"
                "She pays 30 + 3 = $33.\n"
                "The answer is 33."
            ),
            "pot": "price = 40\ndiscount = price * 25 / 100\nsale_price = price - discount\n"
            "tax = sale_price * 10 / 100\nans = sale_price + tax",
            "eot": (
                "% A shirt costs $40.\nprice = 40\n"
                "% It is on sale for 25% off.\nsale_price = price - price * 25 / 100\n"
                "% Maria pays 10% sales tax on the sale price.\n"
                "paid = sale_price + sale_price * 10 / 100\n"
                "ans = paid"
            ),
        },
        33,
    ),
    (
        "Tickets for a show cost $7 for children and $12 for adults. A group of 10 people "
        "paid $95 in all. How many children were in the group?",
        {
            "cot": (
                "If all 10 were adults they would pay 10 * 12 = $120.\n"
                "They paid 120 - 95 = $25 less.\n"
                "Each child saves 12 - 7 = $5, so there were 25 / 5 = 5 children.\n"
                "The answer is 5."
            ),
            "pot": "people = 10\nadult_price = 12\nchild_price = 7\npaid = 95\n"
            "saving = people * adult_price - paid\n"
            "ans = saving / (adult_price - child_price)",
            "eot": (
                "% Let the number of children be x.\nchildren = x\n"
                "% A group of 10 people.\nadults = 10 - children\n"
                "% Children pay $7, adults $12, and the group paid $95 in all.\n"
                "7 * children + 12 * adults = 95\n"
                "ans = children"
            ),
        },
        5,
    ),
]


def messages(question: str, thought: str) -> list[dict[str, str]]:
    """Chat messages asking for one `thought` about `question`: system, few-shot turns, question."""
    if thought not in THOUGHTS:
        raise ValueError(f"unknown thought {thought!r}; expected one of {', '.join(THOUGHTS)}")
    out = [{"role": "system", "content": SYSTEM[thought]}]
    for example, targets, _ in EXAMPLES:
        out.append({"role": "user", "content": build_prompt(example, thought)})
        out.append({"role": "assistant", "content": targets[thought]})
    out.append({"role": "user", "content": build_prompt(question, thought)})
    return out
