"""Sentences for the spoof side: IVR prompts and everyday sentences, our own wording.

The bona fide side is IVR prompts ("please enter your mailbox number followed by the
pound key") in English, Spanish, French and Russian (Italian is out-of-distribution bona
fide only and needs no TTS text), so the TTS voices read text of the same kind and length.
Each language has templates with one ``{}`` slot and fillers for it; :func:`text_pool`
expands them into a few hundred distinct sentences.
"""

from __future__ import annotations

from functools import cache

_TEMPLATES: dict[str, tuple[str, ...]] = {
    "en": (
        "Please enter your {} followed by the pound key.",
        "Your {} has been saved.",
        "I am sorry, that {} is not valid. Please try again.",
        "To change your {}, press two.",
        "You have {} new messages in your mailbox.",
        "Your call is number {} in the queue. Please stay on the line.",
        "The person at extension {} is not available right now.",
        "Your estimated waiting time is {} minutes.",
        "Press {} to return to the main menu.",
        "The meeting has been moved to {} this afternoon.",
        "Could you call me back after {}, please?",
        "We will deliver your order on {}.",
        "I left the keys on the table next to the {}.",
        "The train to the city leaves at {} from platform four.",
        "Thank you for calling. Our office is closed until {}.",
        "Please record your {} after the tone.",
        "The weather tomorrow will be {} in the morning.",
        "My sister bought a new {} last weekend.",
        "Remember to bring the {} to the meeting.",
        "All of our agents are busy. Press {} to leave a message.",
    ),
    "es": (
        "Por favor, introduzca su {} seguido de la tecla numeral.",
        "Su {} ha sido guardado.",
        "Lo siento, ese {} no es válido. Inténtelo de nuevo.",
        "Para cambiar su {}, marque dos.",
        "Usted tiene {} mensajes nuevos en su buzón.",
        "Su llamada es la número {} en la cola. Por favor, no cuelgue.",
        "La extensión {} no está disponible en este momento.",
        "El tiempo de espera estimado es de {} minutos.",
        "Marque {} para volver al menú principal.",
        "La reunión se ha cambiado a las {} de la tarde.",
        "¿Puede llamarme después de las {}, por favor?",
        "Entregaremos su pedido el {}.",
        "Dejé las llaves en la mesa junto a la {}.",
        "El tren a la ciudad sale a las {} del andén cuatro.",
        "Gracias por llamar. Nuestra oficina está cerrada hasta el {}.",
        "Todos nuestros agentes están ocupados. Marque {} para dejar un mensaje.",
    ),
    "fr": (
        "Veuillez entrer votre {} suivi de la touche dièse.",
        "Votre {} a été enregistré.",
        "Désolé, ce {} n'est pas valide. Veuillez réessayer.",
        "Pour modifier votre {}, appuyez sur deux.",
        "Vous avez {} nouveaux messages dans votre boîte vocale.",
        "Votre appel est le numéro {} dans la file d'attente. Veuillez patienter.",
        "Le poste {} n'est pas disponible pour le moment.",
        "Le temps d'attente estimé est de {} minutes.",
        "Appuyez sur {} pour revenir au menu principal.",
        "La réunion a été déplacée à {} heures cet après-midi.",
        "Pouvez-vous me rappeler après {} heures, s'il vous plaît?",
        "Nous livrerons votre commande le {}.",
        "J'ai laissé les clés sur la table à côté de la {}.",
        "Le train pour la ville part à {} heures du quai quatre.",
        "Merci de votre appel. Nos bureaux sont fermés jusqu'au {}.",
        "Tous nos agents sont occupés. Appuyez sur {} pour laisser un message.",
    ),
    "ru": (
        "Пожалуйста, введите ваш {} и нажмите решётку.",
        "Ваш {} сохранён.",
        "Извините, этот {} неверен. Попробуйте ещё раз.",
        "Чтобы изменить ваш {}, нажмите два.",
        "У вас {} новых сообщений в почтовом ящике.",
        "Ваш звонок номер {} в очереди. Пожалуйста, оставайтесь на линии.",
        "Абонент с добавочным номером {} сейчас недоступен.",
        "Примерное время ожидания {} минут.",
        "Нажмите {}, чтобы вернуться в главное меню.",
        "Встреча перенесена на {} часов дня.",
        "Перезвоните мне, пожалуйста, после {} часов.",
        "Мы доставим ваш заказ {}.",
        "Поезд в город отправляется в {} часов с четвёртой платформы.",
        "Спасибо за звонок. Наш офис закрыт до {}.",
        "Все операторы заняты. Нажмите {}, чтобы оставить сообщение.",
    ),
    "it": (
        "Per favore, inserisca il suo {} e prema cancelletto.",
        "Il suo {} è stato salvato.",
        "Mi dispiace, il {} non è corretto. Riprovi.",
        "Per cambiare il suo {}, prema due.",
        "Ha {} nuovi messaggi nella casella vocale.",
        "La sua chiamata è la numero {} in coda. Resti in linea, per favore.",
        "L'interno {} non è disponibile in questo momento.",
        "Il tempo di attesa previsto è di {} minuti.",
        "Prema {} per tornare al menu principale.",
        "La riunione è stata spostata alle {} del pomeriggio.",
        "Può richiamarmi dopo le {}, per favore?",
        "Consegneremo il suo ordine {}.",
        "Ho lasciato le chiavi sul tavolo vicino alla {}.",
        "Il treno per la città parte alle {} dal binario quattro.",
        "Grazie per la chiamata. I nostri uffici sono chiusi fino a {}.",
        "Tutti gli operatori sono occupati. Prema {} per lasciare un messaggio.",
    ),
}

_FILLERS: dict[str, tuple[str, ...]] = {
    "en": ("account number", "password", "mailbox number", "greeting", "PIN code", "seven",
           "twelve", "three", "five thirty", "Monday", "the fourteenth of May", "window",
           "bicycle", "sunny", "forty five", "eight", "nine fifteen", "Friday morning",
           "phone number", "zero", "half past ten", "the kitchen door", "cloudy", "Tuesday"),
    "es": ("número de cuenta", "contraseña", "número de buzón", "saludo", "código", "siete",
           "doce", "tres", "cinco y media", "lunes", "catorce de mayo", "ventana", "cuarenta",
           "ocho", "nueve y cuarto", "viernes"),
    "fr": ("numéro de compte", "mot de passe", "numéro de boîte", "message d'accueil", "code",
           "sept", "douze", "trois", "cinq", "lundi", "quatorze mai", "fenêtre", "quarante",
           "huit", "neuf", "vendredi"),
    "ru": ("номер счёта", "пароль", "номер ящика", "код", "семь", "двенадцать", "три",
           "пять", "понедельника", "четырнадцатое мая", "сорок", "восемь", "девять",
           "пятницы", "десять"),
    "it": ("numero di conto", "password", "numero della casella", "saluto", "codice", "sette",
           "dodici", "tre", "cinque e mezza", "lunedì", "quattordici maggio", "finestra",
           "quaranta", "otto", "nove e un quarto", "venerdì"),
}

LANGUAGES = tuple(_TEMPLATES)
"""Languages with spoof texts (ISO 639-1)."""


@cache
def text_pool(language: str) -> tuple[str, ...]:
    """Every sentence for ``language`` (templates x fillers), sorted; a few hundred each.

    Raises:
        KeyError: no texts for ``language`` (see :data:`LANGUAGES`).
    """
    return tuple(sorted({t.format(f) for t in _TEMPLATES[language] for f in _FILLERS[language]}))
