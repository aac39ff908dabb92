"""The two prompt templates of LongMab-PO: the gold-guided probe and the chain-of-thought answer.

Introduced in notebook 03. Same instructions and the same required output format as the authors'
release (METHOD.md sections 2 and 3); every step of the kit fills these and nothing else.
"""

from __future__ import annotations

PROBE_TEMPLATE = (
    "You are provided with a long document, a complex logical reasoning question, and the correct "
    "answer. Your task is to read the document and perform step-by-step reasoning and finally reach "
    "the correct answer.\n"
    "Instructions:1.Each reasoning step should explicitly refer to the document.\n"
    "2.End your reasoning with `The answer is` followed by the correct answer.\n"
    "Document: {context}\n"
    "Question: {question}\n"
    "Answer: {answer}"
)

COT_ANSWER_TEMPLATE = (
    "You are provided with a long document and a complex logical reasoning question. Read the "
    "document and follow my instructions to process it.\n\n"
    "Document: {context}\n"
    "Question: {question}\n"
    "Instructions:\n"
    "#####\n"
    "1. Provide a reasoning process: You should first understand the complex problem and make a plan "
    "to solve it, then carry out the plan and solve the problem step-by-step and finally deduce the "
    "answer. You could perform reasoning with reflecting, verifying, and revising when encountering "
    "uncertain or contradictory information.\n"
    "2. Provide an answer: Based on your reasoning process, give a short answer to the question. Your "
    "answer should be concise and do not include any reasoning process.\n"
    "#####\n"
    "Your output should follow this format:\n"
    "Reasoning: reasoning process here.\n"
    "Answer: answer here."
)

Messages = list[dict[str, str]]


def probe_prompt(context: str, question: str, answer: str) -> str:
    """The probe prompt: full context, question and gold answer, asking for cited step-by-step reasoning."""
    return PROBE_TEMPLATE.format(context=context, question=question, answer=answer)


def cot_answer_prompt(context: str, question: str) -> str:
    """The chain-of-thought answer prompt, whose required output is 'Reasoning: ... Answer: ...'."""
    return COT_ANSWER_TEMPLATE.format(context=context, question=question)


def user_message(content: str) -> Messages:
    """Wrap a filled template as a single user turn, as the reference does (no system prompt)."""
    return [{"role": "user", "content": content}]
